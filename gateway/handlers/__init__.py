"""S3 operation handlers."""
