"""tap-dativo-salesforce: Salesforce objects to Singer through REST and Bulk API 2.0."""
