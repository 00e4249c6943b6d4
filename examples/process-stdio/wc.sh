#!/bin/sh
# Counts the words of the request body.
words=$(wc -w | tr -d ' ')
echo "$Http_Method request with $words words"
