from cwatch.cli import main

raise SystemExit(main())
