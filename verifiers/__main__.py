from verifiers.cli import main

raise SystemExit(main())
