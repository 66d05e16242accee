"""What every stage shares and imports from below: errors, text-language detection, input checks, file digests."""
