"""tap-dativo-google-sheets: Google Sheets to Singer (singer-sdk streams, one per sheet)."""
