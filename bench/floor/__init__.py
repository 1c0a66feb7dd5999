"""The serving edge's floor for bench/serving.py: a bare DRF endpoint, never part of the product's URLs."""

TABLE = "bench_floor_log"
CREATE = f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, created_at timestamptz, features jsonb)"
