# CommerceQL — every command sets up what it needs first (a virtual environment in .venv).
#   make demo   set up, prepare the sample store, run example queries, write a chart
#   make test   set up and run the whole test suite (what CI runs)
#   make lab    set up and open JupyterLab on notebooks/ with the CommerceQL kernel
#   make dashboard  set up and serve the B2B dashboard notebook (Voila) on http://127.0.0.1:8866
#   make bench  set up and run the benchmarks
#   make bench-scale  set up and run the 100M-sales-row benchmark (builds ~3 GB of Parquet once)
#   make soak   set up and check the kernel's memory stays flat over 2,000 VISUALIZE cells

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: setup demo test test-fast test-tz lint lab dashboard bench bench-scale soak fuzz clean browser-deps java-deps

# The demo needs the package only; the tests add their extras (pytest, playwright, pyspark ...).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "installing CommerceQL into $(VENV) ..."
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/commerceql kernel install --sys-prefix
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	@echo "installing the test tools into $(VENV) (pytest, playwright, pyspark ...) ..."
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(TEST_STAMP)

setup: $(STAMP)
	$(BIN)/python -c "from commerceql.sample import ensure_default_store; print('sample store:', ensure_default_store())"

demo: setup
	@mkdir -p artifacts
	$(BIN)/commerceql schema
	$(BIN)/commerceql query "FROM sales SHOW net_sales, orders, average_order_value GROUP BY customer_type WITH TOTALS DURING last_year"
	$(BIN)/commerceql query "FROM sales SHOW net_sales, orders GROUP BY billing_region DURING last_quarter COMPARE TO previous_year ORDER BY net_sales DESC LIMIT 10"
	$(BIN)/commerceql query "FROM sales SHOW net_sales TIMESERIES month SINCE -12m UNTIL -1m VISUALIZE net_sales TYPE line" --chart artifacts/net_sales_by_month.png
	@echo "chart: artifacts/net_sales_by_month.png"

lint: $(TEST_STAMP)
	$(BIN)/ruff check commerceql kernel tests benchmarks

browser-deps:
	bash .ci/install-browser.sh

java-deps:
	bash .ci/install-java.sh

# The whole suite in the machine's zone, then the time-sensitive tests again under two others:
# answers must not depend on the machine's TZ.
test: setup $(TEST_STAMP) lint browser-deps java-deps
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory test-tz

TZ_TESTS := tests/test_results.py tests/test_time_semantics.py tests/test_results_other_tables.py tests/test_dates.py
test-tz: $(TEST_STAMP)
	TZ=America/Los_Angeles $(BIN)/python -m pytest -q -p no:cacheprovider $(TZ_TESTS)
	TZ=Asia/Tokyo $(BIN)/python -m pytest -q -p no:cacheprovider $(TZ_TESTS)

test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Containers often run as root, where Jupyter refuses to start without --allow-root.
AS_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

# The kernel install (idempotent) also writes JupyterLab's settings defaults into .venv
# (share/jupyter/lab/settings/overrides.d/commerceql.json: widget state saved with the notebook, so
# a notebook reopened without a kernel shows its widgets); re-run here for environments made before.
lab: setup
	$(BIN)/commerceql kernel install --sys-prefix
	$(BIN)/jupyter lab notebooks/ $(AS_ROOT)

dashboard: setup
	$(BIN)/commerceql serve notebooks/dashboard_b2b.ipynb

bench: setup $(TEST_STAMP) java-deps
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.importer $(IMPORTER_BENCH_ARGS)

bench-scale: setup $(TEST_STAMP)
	$(BIN)/python -m benchmarks.scale $(BENCH_SCALE_ARGS)

soak: setup $(TEST_STAMP)
	$(BIN)/python -m benchmarks.soak $(SOAK_ARGS)

# Random and grammar-driven queries for N minutes; exits 1 if any bug was found (see benchmarks/fuzz.py).
fuzz: setup $(TEST_STAMP)
	$(BIN)/python -m benchmarks.fuzz $(or $(FUZZ_ARGS),--minutes 5 --seed 1)

clean:
	rm -rf $(VENV) sample_data/store artifacts
