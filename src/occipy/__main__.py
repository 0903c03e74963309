from occipy.server import main

main()
