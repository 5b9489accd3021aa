"""A handler whose package comes from a layer (/opt/python), as on Lambda."""

import greetings


def handler(event, context):
    return {"greeting": greetings.greet(event["name"])}
