from opencomfy.cli import main

raise SystemExit(main())
