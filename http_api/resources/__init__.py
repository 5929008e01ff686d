"""One module per resource family; each resource is a class with ``on_<method>`` handlers."""
