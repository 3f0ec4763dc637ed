"""What every package needs and none owns: params.yaml reading and the one-line user error."""
