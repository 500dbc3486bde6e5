"""Usage errors exit with status 2 and a message naming the option, in the console scripts whose tests do not
cover it elsewhere (wt5k-curate: test_curation_converters; wt5k-search: test_search_cli; demo: test_demo)."""
import pytest


def _exit_code(main, argv) -> int:
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_crawl_set_without_a_value(capsys):
    from crawler.cli import main
    assert _exit_code(main, ["soundbible", "--set", "DOWNLOAD_DELAY"]) == 2
    assert "--set: expects KEY=VALUE" in capsys.readouterr().err


def test_mirror_unknown_fault(capsys):
    from crawler.mirror.server import main
    assert _exit_code(main, ["--fault", "bogus"]) == 2
    assert "unknown fault 'bogus'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["run", "--out", "x"], ["run", "--raw", "r", "--out", "x", "--sample-rate", "0"],
                                  ["run", "--raw", "r", "--out", "x", "--on-overshoot", "limit"]])
def test_curate_usage(argv, capsys):
    from curation.cli import main
    assert _exit_code(main, argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


@pytest.mark.parametrize("override, message", [("epochs=abc", "epochs must be an integer >= 1, got 'abc'"),
                                               ("epochs=2.5", "epochs must be an integer >= 1, got 2.5"),
                                               ("data.crop_s=abc", "data.crop_s must be positive"),
                                               ("data.train=3", "data.train must be a list")])
def test_train_override_of_the_wrong_type(override, message, capsys):
    from pathlib import Path
    from training.cli import train_main
    config = Path(__file__).resolve().parents[1] / "configs" / "tiny.json"
    assert _exit_code(train_main, ["--config", str(config), "--check", override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [(["--limit", "-3", "soundbible"], "--limit: expects a whole number >= 1"),
                                           (["--replay", "missing.csv", "manifest"], "--replay: missing.csv: no such"),
                                           (["--replay", "bad.csv", "manifest"], "not a published WavText5K CSV")])
def test_crawl_bad_limit_or_replay_csv(argv, message, tmp_path, monkeypatch, capsys):
    from crawler.cli import main
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.csv").write_text("not,a,csv\n")
    assert _exit_code(main, ["--out", "raw", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "raw").exists()  # refused before Scrapy started


@pytest.mark.parametrize("argv, message", [(["--csv", "missing.csv"], "missing.csv: no such published"),
                                           (["--audio-dir", "missing"], "--audio-dir missing: no such folder"),
                                           (["--soundbible-port", "99999"], "expects a port 0-65535")])
def test_mirror_bad_input(argv, message, tmp_path, monkeypatch, capsys):
    from crawler.mirror.server import main
    monkeypatch.chdir(tmp_path)
    assert _exit_code(main, argv) == 2
    assert message in capsys.readouterr().err


def test_mirror_port_in_use(capsys):
    import socket
    from crawler.mirror.server import main
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert _exit_code(main, ["--limit", "1", "--soundbible-port", port, "--bigsoundbank-port", "0"]) == 2
    assert f"cannot listen on 127.0.0.1 ports {port}, 0" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [(["fetch", "cnn14", "--dir", "afile"], "--dir afile: not a folder"),
                                           (["list", "--dir", "afile"], "--dir afile: not a folder"),
                                           (["fetch", "cnn14", "--retries", "-1"], "--retries: expects a whole number >= 0"),
                                           (["fetch", "cnn14", "--timeout", "0"], "--timeout: expects a number > 0"),
                                           (["fetch", "cnn14", "--timeout", "nan"], "--timeout: expects a number > 0")])
def test_weights_dir_that_is_a_file(argv, message, tmp_path, monkeypatch, capsys):
    from crawler.fetch.weights_cli import main
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    assert _exit_code(main, argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["coverage", "--data", "missing"], "--data missing: no such folder"),
    (["audiocaps", "--out", "o", "--workers", "0"], "--workers: expects a whole number >= 1"),
    (["audiocaps", "--out", "o", "--delay", "-1"], "--delay: expects a number >= 0"),
    (["clotho", "--out", "o", "--timeout", "0"], "--timeout: expects a number > 0")])
def test_fetch_bad_numbers_and_folders(argv, message, tmp_path, monkeypatch, capsys):
    from crawler.fetch.cli import main
    monkeypatch.chdir(tmp_path)
    assert _exit_code(main, argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_search_serve_bad_port(capsys):
    from search.cli import main
    assert _exit_code(main, ["serve", "--index", "x", "--port", "99999"]) == 2
    assert "expects a port 0-65535" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["run", "--raw", "raw"], ["overlap", "--train", "raw", "--test", "raw"],
                                  ["stats", "x.csv"]])
def test_curate_out_that_is_a_file(argv, tmp_path, monkeypatch, capsys):
    from curation.cli import main
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw").mkdir()
    (tmp_path / "afile").write_text("x")
    assert _exit_code(main, [*argv, "--out", "afile"]) == 2
    err = capsys.readouterr().err
    assert "--out afile exists and is not a folder" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [(["--sounds", "0"], "--sounds: expects a whole number >= 1"),
                                           (["--out", "afile"], "--out afile exists and is not a folder"),
                                           (["--config", "missing.json"], "no such config file: missing.json"),
                                           (["--quick", "epochs=abc"], "epochs must be an integer >= 1")])
def test_demo_usage_errors_before_any_work(argv, message, tmp_path, monkeypatch, capsys):
    from demo.run import main
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    assert _exit_code(main, ["--out", "demo_out", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "demo_out").exists()  # nothing generated, crawled or curated


def test_gpu_check_without_its_config(tmp_path, monkeypatch, capsys):
    from training.gpu_check import main
    monkeypatch.chdir(tmp_path)  # configs/exp_D.json (the default) is the repository's
    assert main(["--cpu-smoke", "--out", str(tmp_path / "g")]) == 2
    assert "no such config file: configs/exp_D.json" in capsys.readouterr().err
