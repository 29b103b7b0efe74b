// placeholder: replaced by the SluicePacket implementation
