from pentora.cli import main

raise SystemExit(main())
