from fmagenre.platform.session import SUPPORTED_JAVA, find_java_home, java_major_version


def test_java_home_found_is_supported():
    home = find_java_home()
    assert home is not None
    assert java_major_version(f"{home}/bin/java") in SUPPORTED_JAVA


def test_java_major_version_of_missing_binary_is_none(tmp_path):
    assert java_major_version(str(tmp_path / "nope")) is None


def test_session_runs_a_job(spark):
    assert spark.range(10).selectExpr("sum(id)").first()[0] == 45
