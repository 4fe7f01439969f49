from sheetbot.cli.main import main

raise SystemExit(main())
