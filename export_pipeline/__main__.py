from export_pipeline.cli import console_main

console_main()
