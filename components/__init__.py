"""defectqa components: the real logic of every pipeline stage. Never imports Prefect."""
