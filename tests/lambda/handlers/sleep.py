import time


def handler(event, context):
    time.sleep(event["seconds"])
    return "woke up"
