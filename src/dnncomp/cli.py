"""Command-line interface (Click). Thin: parse arguments, call the library, print.

Every DnncompError becomes one line on stderr and exit code 2, never a traceback.
Library modules are imported inside the commands so that ``dnncomp --help`` is
instant and the device install never pulls in TensorFlow.
"""

from __future__ import annotations

import sys
from typing import List, Optional

import click

from . import __version__
from .errors import DnncompError

DATA_DIR_HELP = "Directory holding the dataset files (default: $DNNCOMP_DATA_DIR, else the per-user cache)."


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="dnncomp")
def app():
    """dnncomp: train, compress (quantize, prune, cluster), convert to LiteRT, and measure
    accuracy, latency and size side by side."""


# ---- datasets ---------------------------------------------------------------------

# ---- run / evaluate ------------------------------------------------------------------

# ---- bench ---------------------------------------------------------------------------

# ---- compress / recipes --------------------------------------------------------------

# ---- report / reproduce --------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> int:
    try:
        app.main(args=argv, prog_name="dnncomp", standalone_mode=False)
    except DnncompError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("interrupted; finished artifacts are kept and a rerun resumes", err=True)
        return 130
    except click.exceptions.ClickException as exc:  # usage errors: click's own one-liner
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
