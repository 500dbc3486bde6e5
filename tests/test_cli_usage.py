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
