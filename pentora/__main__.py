from pentora.cli.main import main

raise SystemExit(main())
