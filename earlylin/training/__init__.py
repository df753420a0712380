"""How a run trains, shared by the network and its linear model: the loss, the optimizer and the batch sequence."""
