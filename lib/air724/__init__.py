"""Air724UG driver on top of the AT engine: module, bearer, HTTP and MQTT command sets."""
