"""The help text of every `convscope` command: descriptions wrapped to the terminal, while
the lines written to stand alone (examples, indented) stay as written."""

from __future__ import annotations

import argparse
import textwrap


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """RawDescriptionHelpFormatter, except that a long line starting at the margin (a
    description's sentence) is wrapped to the width argparse chose from $COLUMNS."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = []
        for line in text.splitlines():
            if len(line) > width and not line.startswith(" "):
                lines.extend(textwrap.wrap(line, width, break_on_hyphens=False))
            else:
                lines.append(line)
        return "\n".join(indent + line for line in lines)
