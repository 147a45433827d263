"""``python -m bbr_orchestrator.sandbox``: start the local sandbox and run the main job."""

from bbr_orchestrator.sandbox.main_job import main

main()
