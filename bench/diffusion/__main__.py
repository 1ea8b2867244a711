from bench.diffusion.run import main

main()
