"""Beyond one machine: batch inference in process and on Spark, evaluation at scale, a team MLflow server."""
