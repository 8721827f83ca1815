"""AT engine: one reader task, serialized commands, URC dispatch.

Knows nothing about the Air724 or Aliyun.
"""
