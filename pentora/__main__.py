from pentora.cli._main import main

raise SystemExit(main())
