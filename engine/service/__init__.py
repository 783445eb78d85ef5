"""The live service without HTTP: one engine, one store, live time; reports over them."""
