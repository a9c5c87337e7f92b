"""Audio in and out of the speech models: decoding and checking what users send
(``decode``), encoding synthesised speech into the API's response formats (``encode``)."""
