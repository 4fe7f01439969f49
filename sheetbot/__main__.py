from sheetbot.cli import main

raise SystemExit(main())
