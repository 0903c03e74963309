"""The `occi` command-line tool: verbs over the SDK (`occipy.client`), click + rich.

`main.py` holds the click group and one function per verb, `output.py` the printers,
`config.py` the settings (flags, OCCI_* variables, ~/.config/occi/config.toml).
Never imports the server side.
"""
