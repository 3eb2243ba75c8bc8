package data

// The s3 backend registers s3:// replica URLs (AWS S3 and compatible stores such
// as MinIO), so that --replica s3://bucket/prefix?endpoint=… works. It adds the
// AWS SDK to the binary (about 10 MB), which the product card's promise of S3
// backups is worth.
import _ "github.com/benbjohnson/litestream/s3"
