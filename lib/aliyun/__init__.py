"""Aliyun IoT device side: signing, auth flows, Alink topics and JSON, session supervision."""
