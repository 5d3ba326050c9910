"""Data readers: RecordIO, .lst files, Ground Truth manifests, Pipe mode and image decoding."""
