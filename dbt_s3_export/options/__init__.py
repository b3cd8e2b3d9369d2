"""Configuration: the one option table, and an export's settings read and checked from it.

``table`` declares every option once (type, choices, default, scope, formats);
``values`` reads one option by its entry, ``rules`` checks what involves several,
``config`` builds the ``ExportConfig`` every other part reads, ``table_options``
the catalog and Glue settings of tables, ``render`` the Jinja spec and the option
table of docs/options.md. ``formats`` is the table of file formats, ``attributes``
S3's rules for metadata, tags and content types, ``where`` the check of a ``where``
filter.
May import nothing of the package but ``errors``.
"""
