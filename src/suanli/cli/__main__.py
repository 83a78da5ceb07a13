from suanli.cli.main import main

main()
