"""mkdocs hook (mkdocs.yml `hooks:`): the benchmark figures in the documentation site.

docs/performance.md shows the PNGs the benchmarks write to benchmarks/results/, linked as
``../benchmarks/results/NAME.png`` so that the page also reads right where the repository
is browsed. Those files lie outside docs/, so mkdocs would report the links as broken;
this hook adds every file of benchmarks/results/ to the site, under the same relative
path, and the links resolve. A figure that is missing still fails ``--strict``.
"""
import os

from mkdocs.structure.files import File, InclusionLevel

FIGURES = ("benchmarks", "results")


def on_files(files, config):
    root = os.path.dirname(os.path.abspath(config.config_file_path))
    folder = os.path.join(root, *FIGURES)
    if not os.path.isdir(folder):
        return files
    docs_up = os.path.relpath(root, config.docs_dir).replace(os.sep, "/")
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".png"):
            continue
        dest = "/".join((*FIGURES, name))
        # src_uri as the pages link it (relative to docs/), dest_uri inside the site.
        files.append(File(f"{docs_up}/{dest}", src_dir=config.docs_dir,
                          dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls, dest_uri=dest,
                          # (a path that starts with "." would count as hidden, and excluded)
                          inclusion=InclusionLevel.INCLUDED))
    return files
