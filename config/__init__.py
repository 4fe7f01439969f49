"""The example config (sheetbot.yaml, including workflows/*.yaml); shipped as the package `sheetbot.example`,
so the path the messages name exists in every install."""
