from clapsweep.cli import main

raise SystemExit(main())
