// A storage trigger (Lambda style, unchanged from an S3 notification handler): each
// object created in or deleted from the "uploads" bucket arrives as an S3 event.
// Try: nimbus bucket put uploads notes.txt ./README.md, then nimbus logs upload-indexer.
export const handler = async (event) => {
  if (!Array.isArray(event.Records)) {
    // An HTTP request (API Gateway event): say what this function does.
    return { statusCode: 200, body: 'upload-indexer watches the "uploads" bucket\n' };
  }
  for (const record of event.Records) {
    const key = decodeURIComponent(record.s3.object.key.replace(/\+/g, ' '));
    console.log(`${record.eventName} ${record.s3.bucket.name}/${key} (${record.s3.object.size ?? 0} bytes)`);
  }
  return { indexed: event.Records.length };
};
