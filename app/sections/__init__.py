"""The page's sections, one module each, in the order of the lesson.

header -> data -> augmentations -> train -> compare -> history; each has a `show` that draws it.
"""
