"""Data pipeline: read the Amazon review releases (`reader`), sample and split them (`prepare`), synthetic demo reviews
(`demo_data`) and word vectors learnt from a training split (`word_vectors`). Import from the modules."""
