// placeholder: replaced by the SluiceNetlink implementation
