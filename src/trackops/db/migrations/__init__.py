"""trackops' own scripts for MLflow's tracking-schema chain (MLflow's revision ids, our code)."""
