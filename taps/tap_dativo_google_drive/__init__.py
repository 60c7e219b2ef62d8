"""tap-dativo-google-drive: Google Drive files and document content to Singer."""
