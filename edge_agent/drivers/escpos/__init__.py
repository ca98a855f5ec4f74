"""ESC/POS receipt printers: text encoding and layout (pure), DLE EOT status, the driver."""
