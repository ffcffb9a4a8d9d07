from policyfit.cli.main import main

main()
