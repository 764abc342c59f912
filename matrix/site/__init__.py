"""The published static site: the matrix, tag and engine pages, the finder, runbook and data.

`matrix.site.model` turns observation tables into what the pages show, `matrix.site.render`
writes the standalone files (tag pages, data downloads, badges, feed), and `matrix.site.hooks`
plugs the generated pages into MkDocs. `matrix.site.sample` makes realistic observations for
development and the build benchmark.
"""
