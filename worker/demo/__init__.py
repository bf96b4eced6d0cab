"""The demo D1 database: an SQLite file shaped like the user's app, and its ground truth."""

from worker.demo.catalog import APPENDIX_LEVELS, DEMO_TABLES
from worker.demo.generate import BENCHMARK_SCALE, DemoReport, generate_demo_db
from worker.demo.truth import ground_truth_mapping

__all__ = [
    "APPENDIX_LEVELS",
    "BENCHMARK_SCALE",
    "DEMO_TABLES",
    "DemoReport",
    "generate_demo_db",
    "ground_truth_mapping",
]
