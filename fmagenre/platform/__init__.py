"""Where the jobs run: configuration, the SparkSession, Hadoop file systems, EMR, the job runner.

Beside the layers: everything may use it; it uses no other fmagenre package.
"""
